"""Type stubs of the compiled module prefcurate._core (checked with mypy.stubtest)."""

import os
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, TypedDict, final, overload

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
Level: TypeAlias = Literal["prompt", "prompt_chosen", "pair", "pair_swapped", "chosen_answer", "rejected_answer"]
#: how a benchmark index cuts texts into n-grams
Method: TypeAlias = Literal["reference", "precise"]
#: shingles: word n-grams or character n-grams of the normalised text
ShingleKind: TypeAlias = Literal["word", "char"]
#: MinHash permutation family: fast 64-bit hashes, or datasketch's SHA-1 (identical signatures)
FamilyKind: TypeAlias = Literal["fast", "datasketch"]
#: (NFKC, lower case, collapse whitespace)
NormOpts: TypeAlias = tuple[bool, bool, bool]
#: a quota per group: ("all", _, _), ("k", k, _) or ("ratio", numerator, denominator)
Quota: TypeAlias = tuple[Literal["all", "k", "ratio"], int, int]

class ScanResult(TypedDict):
    """BenchmarkIndex.scan: every (row, benchmark text) pair with a positive
    score, by row then text; then one entry per flagged row."""

    train: npt.NDArray[np.uint64]
    bench: npt.NDArray[np.uint32]
    score: npt.NDArray[np.int64]
    flagged_train: npt.NDArray[np.uint64]
    flagged_bench: npt.NDArray[np.uint32]
    flagged_score: npt.NDArray[np.int64]
    flagged_matches: npt.NDArray[np.uint32]
    span_tokens: npt.NDArray[np.uint64]
    span_text: list[str | None]

class SelectResult(TypedDict):
    """select_top: per row ``reason`` and ``rank`` (empty unless ranks);
    per group ``cutoff``, ``ranked``, ``kept``."""

    reason: npt.NDArray[np.uint8]
    rank: npt.NDArray[np.uint32]
    cutoff: npt.NDArray[np.float64]
    ranked: npt.NDArray[np.uint64]
    kept: npt.NDArray[np.uint64]

class NearResult(TypedDict):
    """dedup_near: the verified links (i < j) and their Jaccard similarity,
    the candidate pairs LSH proposed, rows without a shingle, rows shorter
    than one shingle."""

    edge_i: npt.NDArray[np.uint32]
    edge_j: npt.NDArray[np.uint32]
    edge_jaccard: npt.NDArray[np.float64]
    candidates: int
    no_shingles: int
    short: int

@final
class BenchmarkIndex:
    @staticmethod
    def build(
        texts: Any,
        ids: list[str],
        subsets: list[str],
        *,
        method: Method,
        ngram_range: tuple[int, int] = (7, 13),
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
    def method(self) -> Method: ...
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
    ) -> ScanResult: ...
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
    quotas: list[Quota],
    *,
    tie: Any = None,
    ranks: bool = False,
    num_threads: int | None = None,
) -> SelectResult: ...
def dedup_exact(
    *,
    level: Level,
    norm_opts: NormOpts,
    texts: Any = None,
    chosen: Any = None,
    rejected: Any = None,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def dedup_exact_two(
    *,
    level: Level,
    other: Level,
    norm_opts: NormOpts,
    chosen: Any,
    rejected: Any,
    num_threads: int | None = None,
) -> npt.NDArray[np.uint32]: ...
def dedup_degenerate(
    *, norm_opts: NormOpts, chosen: Any, rejected: Any, num_threads: int | None = None
) -> npt.NDArray[np.bool_]: ...
def dedup_near(
    *,
    level: Level,
    norm_opts: NormOpts,
    shingle_kind: ShingleKind,
    shingle_n: int,
    family_kind: FamilyKind,
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
) -> NearResult: ...
@overload
def dedup_band_keys(
    *,
    level: Level,
    norm_opts: NormOpts,
    shingle_kind: ShingleKind,
    shingle_n: int,
    family_kind: FamilyKind,
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
    level: Level,
    norm_opts: NormOpts,
    shingle_kind: ShingleKind,
    shingle_n: int,
    family_kind: FamilyKind,
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
    level: Level,
    norm_opts: NormOpts,
    shingle_kind: ShingleKind,
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
    text: str, *, norm_opts: NormOpts, shingle_kind: ShingleKind, shingle_n: int
) -> list[bytes]: ...
def minhash(
    shingles: list[bytes], *, family_kind: FamilyKind, a: list[int], b: list[int]
) -> npt.NDArray[np.uint32]: ...
def dedup_signatures(
    *,
    level: Level,
    norm_opts: NormOpts,
    shingle_kind: ShingleKind,
    shingle_n: int,
    family_kind: FamilyKind,
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
