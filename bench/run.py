"""The redaction benchmark: one command, one table (see bench/README.md).

    .venv/bin/python bench/run.py [--size 200MB] [--quick] [--jobs 2]

Generates the dense and the typical log (cached in bench/data/), then measures, one process at
a time: the I/O floor (Python copy in 4 MiB chunks), ``sed -E`` with equivalent rules
(bench/rules.sed, ``LC_ALL=C``), ``sos clean`` where installed (on a subset: it is slow),
``koncis-diag redact FILE > out``, the library stream API on one core and with ``--jobs``
workers, a single line of ``--line-size`` bytes (memory), and ``koncis-diag collect --yes``
over a Jira-like home of ``--home-size`` bytes. Every koncis-diag output is checked against
the planted ground truth (leaks must be 0 for covered kinds) and for byte-identity across
the CLI, one core and ``--jobs``. Results: printed, and written to bench/out/results.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import gen_distinct  # noqa: E402
from bench.gen_log import generate, parse_size  # noqa: E402
from bench.jira_home import build_home  # noqa: E402
from bench.measure import Measurement, machine, measure  # noqa: E402
from bench.score import score  # noqa: E402

BENCH = REPO / "bench"
PY = sys.executable
_COPY = (
    "import sys\nsrc, dst = sys.stdin.buffer, sys.stdout.buffer\n"
    "while True:\n    b = src.read(4 << 20)\n    if not b: break\n    dst.write(b)\n"
)


def human(size: int) -> str:
    return f"{size / 1e9:.3g} GB" if size >= 10**9 else f"{size / 1e6:.3g} MB"


def _native_built() -> bool:
    """Whether the native engine's extension is built in this checkout (scripts/setup.sh)."""
    return any((REPO / "koncis_diag").glob("_native*.so"))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data: Path = args.data_dir
        self.out: Path = args.out_dir
        self.rows: list[Measurement] = []
        self.leaks: list[dict[str, object]] = []
        self.identical: dict[str, bool] = {}
        self.started = time.monotonic()
        self.notes: list[str] = []

    # ---------------------------------------------------------------------------- setup

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.0f}s] {message}", file=sys.stderr, flush=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["XDG_STATE_HOME"] = str(self.out / "state")  # one fresh pseudonym mapping per run
        env["XDG_CONFIG_HOME"] = str(self.out / "config")  # no user rules
        env["PYTHONPATH"] = str(REPO)
        env["NO_COLOR"] = "1"
        return env

    def log_file(self, profile: str, size: int) -> Path:
        path = self.data / f"{profile}-{human(size).replace(' ', '')}.log"
        summary = path.with_name(path.name + ".truth.json")
        if not (path.is_file() and summary.is_file()):
            self.log(f"generating {path.name}")
            generate(path, size, profile, seed=42)
        return path

    # --------------------------------------------------------------------------- steps

    def run(self, row: Measurement) -> Measurement:
        self.rows.append(row)
        self.log(
            f"{row.label}: {row.mb_per_s:.2f} MB/s, {row.wall:.1f} s, {row.peak_rss_mb:.0f} MB {row.note}"
        )
        return row

    def floor(self, log: Path) -> None:
        self.run(
            measure(
                "I/O floor: Python read+write 4 MiB chunks",
                [PY, "-c", _COPY],
                log.stat().st_size,
                stdin=log,
                stdout=self.out / "floor.out",
            )
        )

    def sed(self, log: Path, profile: str) -> Path:
        target = self.out / f"sed-{profile}.log"
        env = dict(os.environ, LC_ALL="C")
        self.run(
            measure(
                f"sed -E (LC_ALL=C), bench/rules.sed [{profile}]",
                ["sed", "-E", "-f", str(BENCH / "rules.sed")],
                log.stat().st_size,
                stdin=log,
                stdout=target,
                env=env,
            )
        )
        return target

    def sos(self, log: Path) -> Optional[Path]:
        if shutil.which("sos") is None:
            self.notes.append("sos clean: not installed (apt-get install sosreport), not measured")
            return None
        root = self.out / "sos"
        shutil.rmtree(root, ignore_errors=True)
        target = root / "target"
        (target / "sos_logs").mkdir(parents=True)
        (target / "var" / "log").mkdir(parents=True)
        sample = target / "var" / "log" / "atlassian-jira.log"
        with open(log, "rb") as source, open(sample, "wb") as out:
            data = source.read(self.args.sos_size)
            out.write(data[: data.rfind(b"\n") + 1])
        size = sample.stat().st_size
        self.run(
            measure(
                f"sos clean (first {human(size)} of dense)",
                ["sos", "clean", "--batch", "--tmp-dir", str(root), str(target)],
                size,
                note="cleans in place; IPv4, MAC, host names, keywords only",
            )
        )
        return sample

    def cli_redact(self, log: Path, label: str, target: Path) -> Measurement:
        return self.run(
            measure(
                label,
                [PY, "-m", "koncis_diag", "redact", str(log)],
                log.stat().st_size,
                stdout=target,
                env=self.env(),
            )
        )

    def library(
        self,
        log: Path,
        jobs: int,
        label: str,
        target: Path,
        python_engine: bool = False,
        engine: Optional[str] = None,
    ) -> Measurement:
        argv = [PY, str(BENCH / "redact_file.py"), "--jobs", str(jobs), str(log), str(target)]
        env = self.env()
        if python_engine:
            env["KONCIS_DIAG_ENGINE"] = "python"  # the path taken where Hyperscan is missing
        if engine is not None:
            env["KONCIS_DIAG_ENGINE"] = engine
        return self.run(measure(label, argv, log.stat().st_size, env=env))

    def collect(self) -> None:
        size = self.args.home_size
        home = build_home(self.data / f"home-{human(size).replace(' ', '')}", size)
        bundles = self.out / "bundles"
        shutil.rmtree(bundles, ignore_errors=True)
        bundles.mkdir(parents=True)
        argv = [
            PY,
            "-m",
            "koncis_diag",
            "collect",
            "--yes",
            "--accept-leak-findings",
            "--no-system",
            "--name",
            "bench",
            "--max-size",
            "1GB",
            "-o",
            str(bundles),
            "--quiet",
        ]
        for pattern in home["files"]:  # type: ignore[union-attr]
            argv += ["--files", str(pattern)]
        for path in home["configs"]:  # type: ignore[union-attr]
            argv += ["--config", str(path)]
        help_text = subprocess.run(
            [PY, "-m", "koncis_diag", "collect", "--help"],
            capture_output=True,
            text=True,
            env=self.env(),
        ).stdout
        note = "one core (collect has no --jobs yet)"
        if "--jobs" in help_text:
            argv += ["--jobs", str(self.args.jobs)]
            note = f"--jobs {self.args.jobs}"
        row = measure(
            f"koncis-diag collect --yes, Jira-like home ({human(int(home['bytes']))})",  # type: ignore[call-overload]
            argv,
            int(home["bytes"]),
            env=self.env(),
            note=note,
        )  # type: ignore[call-overload]
        written = sorted(bundles.glob("*.zip"))
        if written:
            row.note += f"; bundle {written[0].stat().st_size / 1e6:.0f} MB"
        self.run(row)

    def check_leaks(self, label: str, log: Path, output: Path) -> None:
        truth = log.with_name(log.name + ".truth.tsv")
        result = score(truth, output)
        kinds = result["by_kind"]  # type: ignore[index]
        decoys = {k: v["altered"] for k, v in kinds.items() if v["role"] == "decoy"}
        uncovered = {k: v["leaked"] for k, v in kinds.items() if v["role"] == "uncovered"}
        leaked = {
            k: v["leaked"] for k, v in kinds.items() if v["role"] == "covered" and v["leaked"]
        }
        self.leaks.append(
            {
                "output": label,
                "covered_leaks": result["covered_leaks"],
                "leaked_kinds": leaked,
                "decoys_altered": decoys,
                "uncovered_leaked": uncovered,
                "covered_values": sum(
                    v["values"] for v in kinds.values() if v["role"] == "covered"
                ),
            }
        )
        self.log(f"leak check {label}: {result['covered_leaks']} covered values leaked")

    def same(self, label: str, paths: list[Path]) -> None:
        digests = {_sha256(p) for p in paths if p.is_file()}
        self.identical[label] = len(digests) == 1 and all(p.is_file() for p in paths)

    # ------------------------------------------------------------------------ the run

    def redaction_runs(self) -> None:
        args = self.args
        dense = self.log_file("dense", args.size)
        typical = self.log_file("typical", args.size)
        self.floor(dense)
        sed_dense = self.sed(dense, "dense")
        self.sed(typical, "typical")
        sos_sample = self.sos(dense) if "sos" not in args.skip else None
        jobs = args.jobs
        cli = self.out / "koncis-cli-dense.log"
        one = self.out / "koncis-lib1-dense.log"
        many = self.out / f"koncis-lib{jobs}-dense.log"
        self.cli_redact(dense, "koncis-diag redact FILE > out [dense]", cli)
        self.library(dense, 1, "library stream API, 1 core [dense]", one)
        self.library(dense, jobs, f"library ParallelRedaction --jobs {jobs} [dense]", many)
        self.same(f"dense: CLI = library 1 core = --jobs {jobs}", [cli, one, many])
        t_one = self.out / "koncis-lib1-typical.log"
        t_many = self.out / f"koncis-lib{jobs}-typical.log"
        self.library(typical, 1, "library stream API, 1 core [typical]", t_one)
        self.library(typical, jobs, f"library ParallelRedaction --jobs {jobs} [typical]", t_many)
        self.same(f"typical: 1 core = --jobs {jobs}", [t_one, t_many])
        if "python-engine" not in args.skip:
            for profile, log, accelerated in (("dense", dense, one), ("typical", typical, t_one)):
                plain = self.out / f"koncis-python1-{profile}.log"
                self.library(
                    log, 1, f"pure-Python engine, 1 core [{profile}]", plain, python_engine=True
                )
                self.same(f"{profile}: Hyperscan engine = pure-Python engine", [accelerated, plain])
        if "native-engine" not in args.skip and _native_built():
            for profile, log, accelerated in (("dense", dense, one), ("typical", typical, t_one)):
                native = self.out / f"koncis-native1-{profile}.log"
                self.library(log, 1, f"native engine, 1 core [{profile}]", native, engine="native")
                self.same(f"{profile}: Hyperscan engine = native engine", [accelerated, native])
        self.check_leaks("koncis-diag [dense]", dense, cli)
        self.check_leaks("koncis-diag [typical]", typical, t_one)
        self.check_leaks("sed -E [dense]", dense, sed_dense)
        if sos_sample is not None:
            self.check_leaks("sos clean [dense subset]", dense, sos_sample)

    def distinct(self) -> None:
        """Every value new (``gen_distinct.py``): first sight of values and bounded memory."""
        size = self.args.distinct_size
        log = self.data / f"distinct-{human(size).replace(' ', '')}.log"
        if not log.is_file():
            self.log(f"generating {log.name}")
            gen_distinct.generate(log, size)
        target = self.out / "koncis-lib1-distinct.log"
        self.library(log, 1, "library stream API, 1 core [distinct]", target)
        planted, leaked = gen_distinct.planted(log), gen_distinct.planted(target)
        self.leaks.append(
            {
                "output": "koncis-diag [distinct]",
                "covered_leaks": leaked,
                "leaked_kinds": {"ipv4/email": leaked} if leaked else {},
                "decoys_altered": {},
                "uncovered_leaked": {},
                "covered_values": planted,
            }
        )
        self.log(f"leak check koncis-diag [distinct]: {leaked} covered values leaked")

    def all(self) -> None:
        args = self.args
        shutil.rmtree(self.out / "state", ignore_errors=True)
        self.out.mkdir(parents=True, exist_ok=True)
        if "redact" not in args.skip:
            self.redaction_runs()
        if "longline" not in args.skip:
            line = self.data / f"longline-{human(args.line_size).replace(' ', '')}.log"
            if not line.is_file():
                self.log(f"generating {line.name}")
                generate(line, args.line_size, "longline", seed=42)
            self.cli_redact(
                line,
                f"koncis-diag redact: one {human(line.stat().st_size)} line",
                self.out / "koncis-longline.log",
            )
        if "distinct" not in args.skip:
            self.distinct()
        if "home" not in args.skip:
            self.collect()
        for path in self.out.glob("*.log"):
            if not args.keep:
                path.unlink()
        (self.out / "floor.out").unlink(missing_ok=True)

    # ------------------------------------------------------------------------- report

    def table(self) -> str:
        sed = {
            r.label.rsplit("[", 1)[-1].rstrip("]"): r.mb_per_s
            for r in self.rows
            if r.label.startswith("sed")
        }
        sos = next((r.mb_per_s for r in self.rows if r.label.startswith("sos")), 0.0)
        floor = next((r.mb_per_s for r in self.rows if r.label.startswith("I/O floor")), 0.0)
        lines = [
            "| run | input | MB/s | wall s | CPU s | peak RSS MB | × sed | × sos clean | % of I/O floor | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for row in self.rows:
            profile = row.label.rsplit("[", 1)[-1].rstrip("]") if row.label.endswith("]") else ""
            koncis = "koncis" in row.label or "library" in row.label
            vs_sed = f"{row.mb_per_s / sed[profile]:.2f}" if koncis and sed.get(profile) else ""
            vs_sos = f"{row.mb_per_s / sos:.1f}" if koncis and sos and profile == "dense" else ""
            vs_floor = f"{100 * row.mb_per_s / floor:.1f}" if koncis and floor and profile else ""
            lines.append(
                f"| {row.label} | {human(row.input_bytes)} | {row.mb_per_s:.2f} | {row.wall:.1f} | "
                f"{row.cpu:.1f} | {row.peak_rss_mb:.0f} | {vs_sed} | {vs_sos} | {vs_floor} | {row.note} |"
            )
        lines += [
            "",
            "| output | covered values planted | covered values leaked | decoys altered (values) | uncovered leaked |",
            "|---|---:|---:|---|---|",
        ]
        for leak in self.leaks:
            kinds = f" ({_compact(leak['leaked_kinds'])})" if leak["leaked_kinds"] else ""
            lines.append(
                f"| {leak['output']} | {leak['covered_values']} | {leak['covered_leaks']}{kinds} | "
                f"{_compact(leak['decoys_altered'])} | {_compact(leak['uncovered_leaked'])} |"
            )
        lines.append("")
        for label, same in self.identical.items():
            lines.append(f"- byte-identical ({label}): {'yes' if same else 'NO'}")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


def _compact(values: object, most: int = 4) -> str:
    """``kind n`` pairs, the largest first, at most ``most`` of them."""
    pairs = sorted(dict(values).items(), key=lambda kv: -kv[1]) if values else []  # type: ignore[call-overload]
    text = ", ".join(f"{k} {v}" for k, v in pairs[:most] if v) or "0"
    return text + (", …" if len([v for _, v in pairs if v]) > most else "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, help="dense and typical logs (default 200MB)")
    parser.add_argument("--quick", action="store_true", help="20MB everywhere: a smoke run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--line-size", type=parse_size, help="the single-line file (default --size)"
    )
    parser.add_argument("--home-size", type=parse_size, help="the Jira-like home (default --size)")
    parser.add_argument("--sos-size", type=parse_size, help="sos clean sample (default 20MB)")
    parser.add_argument(
        "--distinct-size", type=parse_size, help="the log of distinct values (default 20MB)"
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["redact", "sos", "longline", "distinct", "home", "python-engine", "native-engine"],
    )
    parser.add_argument("--keep", action="store_true", help="keep the redacted outputs")
    parser.add_argument("--data-dir", type=Path, default=BENCH / "data")
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    args = parser.parse_args(argv)
    default = parse_size("20MB" if args.quick else "200MB")
    args.size = args.size or default
    args.line_size = args.line_size or args.size
    args.home_size = args.home_size or args.size
    args.sos_size = args.sos_size or parse_size("5MB" if args.quick else "20MB")
    args.distinct_size = args.distinct_size or parse_size("5MB" if args.quick else "20MB")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    info = machine()
    bench.all()
    took = time.monotonic() - bench.started
    header = (
        f"Machine: {info['cores']} cores, {info['cpu']}, {info['memory']}, {info['os']}; "
        f"Python {info['python']}; engine: {info['engine']}; {info['sed']}; sos: {info['sos']}; "
        f"load average at start {info['load']}; whole run {took / 60:.1f} min."
    )
    text = header + "\n\n" + bench.table() + "\n"
    print(text)
    (args.out_dir / "results.md").write_text(text, encoding="utf-8")
    (args.out_dir / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "args": {k: str(v) for k, v in vars(args).items()},
                "rows": [vars(r) for r in bench.rows],
                "leaks": bench.leaks,
                "identical": bench.identical,
            },
            indent=2,
            default=str,
        ),
        encoding="utf-8",
    )
    failed = [r.label for r in bench.rows if r.returncode != 0]
    leaked = any(leak["covered_leaks"] for leak in bench.leaks if "koncis" in str(leak["output"]))
    return 1 if failed or leaked or not all(bench.identical.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
