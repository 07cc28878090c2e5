"""The autoencoder's reconstruction table.

Each is checked against values worked out by hand; the mutation run (issue 39, benchmarks/mutation.sh)
found these functions reached by no test of the modules that decide results."""

from __future__ import annotations

from gensis.autoencoder.quality import reconstruction_table


def test_the_reconstruction_table_rows_and_headers() -> None:
    header, rows = reconstruction_table(
        {
            "psnr_db": 31.2,
            "retrieval_top1": 40.0,
            "ceiling": {"retrieval_top1": 80.0},
            "chance": {"retrieval_top1": 2.5},
        }
    )
    assert header == ["figure", "reconstructions", "real stage-1 views (ceiling)", "chance"]
    assert rows == [["PSNR (dB)", "31.2", "-", "-"], ["source retrieval top-1 (%)", "40.0", "80.0", "2.5"]]
    _, rows = reconstruction_table({"cosine_to_source": 0.5, "retrieval_top5": 90.0, "retrieval_median_rank": 1})
    assert [r[0] for r in rows] == [
        "cosine to the source (stage-1 space)",
        "source retrieval top-5 (%)",
        "median rank of the source",
    ]
