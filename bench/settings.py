"""Sizes of a run: the full benchmark, or the smoke run CI uses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class Settings:
    smoke: bool
    jobs: int
    scale_jobs: int
    w2_phases: list[tuple[float, float]]
    delayed_jobs: int
    delayed_spread_s: float
    idle_s: float
    ceiling_s: float
    ceiling_requests: int
    list_requests: int
    profile_dir: str | None = None
    noisy_jobs: int = 3000  # healthy-destination jobs of the noisy-neighbour workload
    noisy_window_s: float = 30.0


def make_settings(args: argparse.Namespace) -> Settings:
    if args.smoke:
        return Settings(True, args.jobs or 300, args.scale_jobs or 2000,
                        [(50, 1), (200, 1)], 100, 1.0, 1.0, 1.0, 1000, 20, args.profile,
                        noisy_jobs=200, noisy_window_s=3.0)
    return Settings(False, args.jobs or 20_000, args.scale_jobs or 1_000_000,
                    [(50, 10), (500, 10)], 1000, 10.0, 10.0, 5.0, 20_000, 200, args.profile)
