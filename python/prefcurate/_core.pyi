"""Type stubs of the compiled module prefcurate._core (checked with mypy.stubtest)."""

import os
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "BUILTIN_UNICODE_VERSION",
    "MAX_TEXT_BYTES",
    "BenchmarkIndex",
    "__version__",
    "_after_fork_in_child",
    "dedup_band_keys",
    "dedup_degenerate",
    "dedup_exact",
    "dedup_exact_two",
    "dedup_jaccard",
    "dedup_near",
    "dedup_signatures",
    "encode_strings",
    "install_unicode_tables",
    "lower",
    "minhash",
    "pair_ids",
    "select_top",
    "shingles",
    "tokenize",
    "unicode_version",
    "union_clusters",
]

__version__: str
BUILTIN_UNICODE_VERSION: str
MAX_TEXT_BYTES: int

#: what part of a pair a dedup key covers (texts: the whole text at any level)
_Level: TypeAlias = Literal[
    "prompt", "prompt_chosen", "pair", "pair_swapped", "chosen_answer", "rejected_answer"
]
#: how a benchmark index cuts texts into n-grams
_Method: TypeAlias = Literal["reference", "precise"]
#: shingles: word n-grams or character n-grams of the normalised text
_ShingleKind: TypeAlias = Literal["token", "word", "char"]
#: MinHash permutation family: fast 64-bit hashes, or datasketch's SHA-1 (identical signatures)
_FamilyKind: TypeAlias = Literal["fast", "datasketch"]
#: (NFKC, lower case, collapse whitespace)
_NormOpts: TypeAlias = tuple[bool, bool, bool]
#: a quota per group: ("all", _, _), ("k", k, _) or ("ratio", numerator, denominator)
_Quota: TypeAlias = tuple[Literal["all", "k", "ratio"], int, int]

@final
class BenchmarkIndex:
    @staticmethod
    def build(
        texts: Any,
        ids: list[str],
        subsets: list[str],
        *,
        method: _Method,
        ngram_range: tuple[int, int] = ...,  # (7, 13)
        n: int = 13,
        min_tokens: int = 5,
        num_threads: int | None = None,
    ) -> BenchmarkIndex: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> BenchmarkIndex: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> BenchmarkIndex: ...
    def __len__(self) -> int: ...
    @property
    def ids(self) -> list[str]: ...
    @property
    def subsets(self) -> list[str]: ...
    @property
    def texts(self) -> list[str]: ...
    @property
    def method(self) -> _Method: ...
    @property
    def ngram_range(self) -> tuple[int, int]: ...
    @property
    def min_tokens(self) -> int | None: ...
    @property
    def unicode_version(self) -> str: ...
    @property
    def n_grams(self) -> int: ...
    @property
    def heap_bytes(self) -> int: ...
    def doc_tokens(self) -> npt.NDArray[np.uint64]: ...
    def doc_gram_counts(self) -> npt.NDArray[np.uint64]: ...
    def scan(
        self,
        texts: Any,
        *,
        spans: bool = True,
        num_threads: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> dict[
        str, Any
    ]: ...  # train, bench, score, flagged_*, span_tokens: arrays; span_text: list[str | None]
    def scan_precise(
        self,
        texts: Any,
        *,
        max_train_df: int,
        max_bench_df: int,
        min_coverage: float,
        num_threads: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> tuple[
        npt.NDArray[np.uint64], npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.float64]
    ]: ...
    def longest_spans(
        self, texts: Any, rows: list[int], docs: list[int], *, num_threads: int | None = None
    ) -> list[tuple[str | None, int]]: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...

def encode_strings(
    column: Any, *, num_threads: int | None = None
) -> tuple[npt.NDArray[np.uint32], list[str]]: ...
def select_top(
    scores: npt.NDArray[np.float64],
    groups: npt.NDArray[np.uint32],
    quotas: list[_Quota],
    *,
    tie: Any = None,
    ranks: bool = False,
    num_threads: int | None = None,
) -> dict[str, Any]: ...  # reason, rank (per row); cutoff, ranked, kept (per group): arrays
def dedup_exact(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def dedup_exact_two(
    *,
    level: _Level,
    other: _Level,
    norm_opts: _NormOpts,
    chosen: Any,
    rejected: Any,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def dedup_degenerate(
    *, norm_opts: _NormOpts, chosen: Any, rejected: Any, num_threads: int | None = None
) -> npt.NDArray[np.bool_]: ...
def dedup_near(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    shingle_kind: _ShingleKind,
    shingle_n: int,
    family_kind: _FamilyKind,
    a: npt.NDArray[np.uint32],
    b: npt.NDArray[np.uint32],
    bands: int,
    rows_per_band: int,
    threshold: float,
    max_bucket: int = 64,
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    prefix_keys: npt.NDArray[np.uint64] | None = None,
    num_threads: int | None = None,
) -> dict[str, Any]: ...  # edge_i, edge_j, edge_jaccard: arrays; candidates, no_shingles, short: int
@overload
def dedup_band_keys(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    shingle_kind: _ShingleKind,
    shingle_n: int,
    family_kind: _FamilyKind,
    a: npt.NDArray[np.uint32],
    b: npt.NDArray[np.uint32],
    bands: int,
    rows_per_band: int,
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
    with_short: Literal[False] = False,
) -> npt.NDArray[np.uint64]: ...
@overload
def dedup_band_keys(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    shingle_kind: _ShingleKind,
    shingle_n: int,
    family_kind: _FamilyKind,
    a: npt.NDArray[np.uint32],
    b: npt.NDArray[np.uint32],
    bands: int,
    rows_per_band: int,
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
    with_short: Literal[True],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]: ...
def dedup_jaccard(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    shingle_kind: _ShingleKind,
    shingle_n: int,
    i: list[int],
    j: list[int],
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
) -> npt.NDArray[np.float64]: ...
def union_clusters(n: int, i: list[int], j: list[int]) -> npt.NDArray[np.uint32]: ...
def shingles(
    text: str, *, norm_opts: _NormOpts, shingle_kind: _ShingleKind, shingle_n: int
) -> list[bytes]: ...
def minhash(
    shingles: list[bytes], *, family_kind: _FamilyKind, a: list[int], b: list[int]
) -> npt.NDArray[np.uint32]: ...
def dedup_signatures(
    *,
    level: _Level,
    norm_opts: _NormOpts,
    shingle_kind: _ShingleKind,
    shingle_n: int,
    family_kind: _FamilyKind,
    a: list[int],
    b: list[int],
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def pair_ids(
    source: Any, chosen: Any, rejected: Any, *, num_threads: int | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]: ...
def tokenize(text: str) -> list[str]: ...
def lower(text: str) -> str: ...
def unicode_version() -> str: ...
def install_unicode_tables(
    version: str,
    word: list[tuple[int, int]],
    lower: list[tuple[int, str]],
    case_ignorable: list[tuple[int, int]],
    cased: list[tuple[int, int]],
) -> None: ...
def _after_fork_in_child() -> None: ...
