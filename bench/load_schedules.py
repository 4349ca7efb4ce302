"""Benchmark: load and validate 10,000 reminders over 2,000 people.

Reports the time of ``check_schedules`` (parse with line numbers, validate, merge, cross-check,
template check) as a ratio to a plain YAML parse of the same files in the same run, and the peak
memory of loading. Usage: ``python bench/load_schedules.py [--reminders N] [--people N]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config.loader import check_schedules  # noqa: E402

WHENS = [
    "{monthly: {weekday: fri, nth: 1}, at: '09:00'}",
    "{monthly: {day: 15}, at: '10:00'}",
    "{monthly: {workday: -1}, at: '16:00'}",
    "{quarterly: {month: 1, day: 10}, at: '09:00'}",
    "{yearly: {month: 1, workday: 10}, at: '09:00'}",
    "{cron: '30 9 * * 1'}",
]


def generate(folder: Path, reminders: int, people: int) -> None:
    units = max(1, people // 10)
    lines = ["units:"]
    lines += [f"  - {{id: u{i}, name: 单位{i}, leaders: [p{i * 10}]}}" for i in range(units)]
    lines.append("people:")
    for i in range(people):
        role = "leader" if i % 10 == 0 else "secretary"
        lines.append(f"  - {{id: p{i}, name: 人员{i}, roles: [{role}], unit: u{i // 10}, "
                     f"mobile: '138{i:08d}', ids: {{wecom: user{i}}}}}")
    lines.append("channels:")
    lines += [f"  - {{id: c{i}, name: 群{i}, platform: wecom, webhook: ''}}" for i in range(50)]
    (folder / "org.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    per_file = 1000
    for f in range(0, reminders, per_file):
        out = ["reminders:"]
        for i in range(f, min(f + per_file, reminders)):
            out += [
                f"  - id: r{i}",
                f"    title: 提醒{i}",
                f"    when: {WHENS[i % len(WHENS)]}",
                "    holiday: next_workday",
                "    notices: [3d, 1d]",
                "    template: default",
                "    recipients:",
                f"      channels: [c{i % 50}]",
                f"      mention: {{units: [u{i % units}], roles: [secretary]}}",
                "    confirm: {deadline: 3wd, remind_every: 1d}",
            ]
        (folder / f"reminders{f // per_file:02d}.yaml").write_text("\n".join(out) + "\n", encoding="utf-8")


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "schedules"
        folder.mkdir()
        generate(folder, args.reminders, args.people)
        files = sorted(folder.glob("*.yaml"))
        templates = ROOT / "message_templates"

        def load() -> None:
            schedules, issues = check_schedules(folder, templates_dir=templates)
            assert schedules is not None, issues[:5]
            assert len(schedules.reminders) == args.reminders

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        def plain_pyyaml() -> None:
            for path in files:
                yaml.load(path.read_text(encoding="utf-8"), Loader=loader)

        t_load = best_of(args.runs, load)
        t_pyyaml = best_of(args.runs, plain_pyyaml)
        gc.collect()
        tracemalloc.start()
        load()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"reminders={args.reminders} people={args.people} files={len(files)} (best of {args.runs})")
    print(f"load+validate:              {t_load:8.3f} s")
    print(f"plain parse (PyYAML {loader.__name__}): {t_pyyaml:8.3f} s")
    print(f"ratio load+validate / plain parse: {t_load / t_pyyaml:.2f}x")
    print(f"peak traced memory while loading: {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
