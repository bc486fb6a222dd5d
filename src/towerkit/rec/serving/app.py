"""The HTTP face of ``RecService`` (FastAPI): /health, /recommend, /reload.

Every refusal is a 4xx whose ``detail`` is one line naming the field and what was expected:
422 for a body that does not fit (unknown field, k out of range, neither user_id nor features,
an unknown feature key), 404 for a user id the model has never seen.
"""

from __future__ import annotations

import threading
from typing import Any

import faiss
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from towerkit.core.errors import TowerkitError
from towerkit.rec.serving.service import (
    DEFAULT_POOL,
    MAX_K,
    Ranking,
    RecService,
    UnknownUserError,
)


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | int | None = Field(None, description="a user the model was trained on")
    features: dict[str, Any] | None = Field(
        None, description="user feature values (a new user, or a known one described afresh)"
    )
    liked: list[str | int] = Field(
        default_factory=list,
        description="with features: the items the user liked so far, oldest first (a history "
        "model reads them; they are never recommended back)",
    )
    passed: list[str | int] = Field(
        default_factory=list, description="with features: the items the user passed so far"
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = Field(True, description="leave out what user_id already swiped on")
    exclude: list[str | int] = Field(default_factory=list, description="more ids to leave out")
    rank_by: Ranking = Field(
        "retrieval",
        description="retrieval: by cosine; like: the top `pool` by cosine re-ranked by like "
        "probability",
    )
    pool: int = Field(DEFAULT_POOL, ge=1, le=MAX_K, description="with rank_by=like")
    like_probability: bool = Field(
        True,
        description="false: skip the like-vs-pass model (items carry null): cheaper, and not "
        "with rank_by=like",
    )

    @model_validator(mode="after")
    def _user_or_features(self) -> RecommendRequest:
        if self.user_id is None and self.features is None:
            raise ValueError("give user_id or features (or both)")
        if (self.liked or self.passed) and self.features is None:
            raise ValueError(
                "liked / passed describe a user afresh: give features too ({} will do)"
            )
        if self.rank_by == "like" and not self.like_probability:
            raise ValueError(
                "rank_by=like ranks by the like probability: drop like_probability=false"
            )
        return self


class Recommendation(BaseModel):
    item_id: str
    score: float  # cosine of the query and candidate embeddings (retrieval)
    # the model's probability that the user likes the item (null: not asked for)
    like_probability: float | None


class RecommendResponse(BaseModel):
    model: str  # the registry version that answered, e.g. rec-two-tower/3
    version: int | None
    items: list[Recommendation]


def _validation_detail(exc: RequestValidationError) -> str:
    """Pydantic's error list as one line: ``body.k: Input should be less than or equal to 1000``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


class ThreadLimit:
    """FAISS's OpenMP thread count is per OS thread: the count ``rec serve`` sets in its main
    thread does not reach the worker threads that run requests, and each of them would search
    with a team as large as the machine. Each worker sets it once, before its first request.
    (torch's count is process-wide, and LightGBM gets its own per call.)"""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._done = threading.local()

    def apply(self) -> None:
        if self.threads is not None and not getattr(self._done, "set", False):
            # torch's first call in a thread sets OpenMP's count to its own; when FAISS's
            # OpenMP runtime was loaded first, that is FAISS's count too, so it goes first
            torch.get_num_threads()
            faiss.omp_set_num_threads(self.threads)
            self._done.set = True


def create_app(service: RecService, threads: int | None = None) -> FastAPI:
    """``threads``: FAISS threads per request (None: OpenMP's default)."""
    app = FastAPI(title="towerkit rec serve", version="1")
    app.state.service = service
    limit = ThreadLimit(threads)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(UnknownUserError)
    async def _unknown_user(_: Request, exc: UnknownUserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(TowerkitError)
    async def _bad_input(_: Request, exc: TowerkitError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, Any]:
        limit.apply()
        # as a request's thread sees them
        threads = {"torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads()}
        return {**service.served.health(), "threads": threads}

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(body: RecommendRequest) -> RecommendResponse:
        limit.apply()
        served, items = service.recommend(
            user_id=None if body.user_id is None else str(body.user_id),
            features=body.features,
            k=body.k,
            exclude_seen=body.exclude_seen,
            exclude=[str(item) for item in body.exclude],
            liked=[str(item) for item in body.liked],
            passed=[str(item) for item in body.passed],
            rank_by=body.rank_by,
            pool=body.pool,
            like_probability=body.like_probability,
        )
        return RecommendResponse(
            model=served.bundle.label,
            version=served.version,
            items=[
                Recommendation(
                    item_id=r.item_id, score=r.score, like_probability=r.like_probability
                )
                for r in items
            ],
        )

    @app.post("/reload")
    async def reload() -> dict[str, Any]:
        before, after = await run_in_threadpool(service.reload)
        return {**after.health(), "previous": before.bundle.label}

    return app
