"""Training: the stage-1/3 loop (pretrain.py, one step in readable parts), stage 3's generated
views and disentanglement task (gen_views.py, view_sources.py), the stage-2 generator loop
(generator.py), their checkpoint state (state.py) and the skeleton both loops share (loop.py)."""
