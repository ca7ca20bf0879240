"""MovieLens datasets: where to get them (movielens/sources.py: URLs, checksums, the verified
download) and how to read them (movielens/parsers.py: every format into one `Dataset`)."""

from movierec.movielens.parsers import (
    MAX_RATING,
    MIN_RATING,
    Dataset,
    check_movies_known,
    load,
    pair_keys,
)
from movierec.movielens.sources import (
    DATASETS,
    GROUPLENS,
    DatasetSource,
    checksum_of,
    dataset_folder,
    dataset_source,
    download,
    fetch,
    parse_checksum,
    unpack,
)

__all__ = ["DATASETS", "GROUPLENS", "MAX_RATING", "MIN_RATING", "Dataset", "DatasetSource",
           "check_movies_known", "checksum_of", "dataset_folder", "dataset_source", "download",
           "fetch", "load", "pair_keys", "parse_checksum", "unpack"]
