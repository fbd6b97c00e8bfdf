"""`thermal-synth privacy-audit`: train attackers on the thermal stream, report what they learn."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermal_msgs.privacy import DRIVER_DEFAULTS
from thermal_synth.common.cli_args import (
    non_negative_int,
    positive_int,
    run_writing_command,
    use_one_line_errors,
)
from thermal_synth.common.output_dirs import OutputDirError
from thermal_synth.privacy_audit.audit import AuditConfig, run_audit
from thermal_synth.privacy_audit.data import DEFAULT_VIEWS, DRIVER_DEFAULT, AuditDataError, parse_resolutions
from thermal_synth.privacy_audit.sweep import SWEEP_VIEWS, run_sweep

PROG = "thermal-synth privacy-audit"


def _resolutions(text: str):
    try:
        return parse_resolutions(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands, name: str, help: str) -> None:
    defaults = AuditConfig()
    parser = commands.add_parser(
        name,
        help=help,
        description=(
            "Train person-detection, re-identification and RGB-reconstruction attackers on what an "
            "eavesdropper records (the raw frame, or the driver's privacy-downsampled heatmap) and "
            "test them on unseen sessions. Writes audit.md, audit.json, audit.png and "
            "reconstructions.png; with --sweep, the privacy-utility curve of a fixed list of privacy "
            "settings instead (sweep.md, sweep.json, sweep.png). Needs a dataset made by "
            "thermal-synth sim."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset directory (thermal-synth sim)")
    parser.add_argument(
        "--out", type=Path, required=True, help="report directory (must not exist or be empty)"
    )
    rows = parser.add_mutually_exclusive_group()
    rows.add_argument(
        "--resolutions",
        type=_resolutions,
        default=None,
        metavar="RxC,...",
        help="what the eavesdropper records, rows x cols: 120x160 is the raw frame, smaller sizes the "
        "plain heatmap at that grid (no transforms); the driver's default parameters are always "
        f"audited too, as 'default' (today {DRIVER_DEFAULTS.label}) "
        f"(default: {','.join(view.label for view in DEFAULT_VIEWS if view != DRIVER_DEFAULT)})",
    )
    rows.add_argument(
        "--sweep",
        action="store_true",
        help=f"re-identification and silhouette IoU for {len(SWEEP_VIEWS)} fixed privacy settings "
        "(docs/privacy.md) instead of the audit; no detection, reconstruction or FID",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=defaults.steps,
        help=f"training steps per attacker and fold (default {defaults.steps})",
    )
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed)
    parser.add_argument(
        "--device", default=defaults.device, help="auto (GPU if present), cpu, cuda or cuda:N"
    )
    parser.add_argument(
        "--max-samples",
        type=positive_int,
        default=defaults.max_samples,
        help=f"at most this many frames per training and per test set (default {defaults.max_samples})",
    )
    parser.add_argument(
        "--fid-samples",
        type=positive_int,
        default=defaults.fid_samples,
        help=f"frames per FID set (default {defaults.fid_samples}; Inception is slow on a CPU)",
    )
    parser.add_argument("--no-fid", action="store_true", help="skip the FID of the reconstructions")
    parser.set_defaults(run=run)
    use_one_line_errors(parser)


def run(args: argparse.Namespace) -> int:
    def audit_as_asked() -> dict:
        config = AuditConfig(
            views=SWEEP_VIEWS if args.sweep else args.resolutions or DEFAULT_VIEWS,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            max_samples=args.max_samples,
            fid=not (args.no_fid or args.sweep),
            fid_samples=args.fid_samples,
        )
        if args.sweep:
            return run_sweep(args.data, args.out, config)
        return run_audit(args.data, args.out, config)

    result = run_writing_command(PROG, audit_as_asked, (AuditDataError, OutputDirError, ValueError))
    if isinstance(result, int):
        return result
    print(summarise_sweep(result, args.out) if args.sweep else summarise(result, args.out))
    return 0


def summarise_sweep(result: dict, out: Path) -> str:
    """One line per setting and the knee; the table and the plot are in sweep.md and sweep.png."""
    lines = [f"wrote sweep.md, sweep.json, sweep.png to {out} in {result['wall_time_s']:.0f} s"]
    for row in result["rows"]:
        lines.append(
            f"  {row['label']}: strongest re-ID {row['reid_strongest']:.3f} "
            f"(chance {row['reid_chance']:.3f}), silhouette IoU {row['silhouette_iou']:.3f}"
        )
    lines.append(f"  knee: {result['knee'] or 'none'}")
    return "\n".join(lines)


def summarise(result: dict, out: Path) -> str:
    """A few lines for the terminal; the full table is in audit.md."""
    attacks = result["attacks"]
    files = ["audit.md", "audit.json", "audit.png"]
    if attacks["reconstruction"]["status"] == "ok":
        files.append("reconstructions.png")
    lines = [f"wrote {', '.join(files)} to {out} in {result['wall_time_s']:.0f} s"]
    for name, attack in attacks.items():
        if attack["status"] != "ok":
            lines.append(f"  {name}: skipped ({attack['reason']})")
            continue
        for label, entry in attack["results"].items():
            if name == "reconstruction":
                lines.append(
                    f"  {name} {label}: MAE {entry['mae']:.3f} (mean image {attack['baseline']['mae']:.3f})"
                )
            else:
                strongest = entry.get("strongest")
                stronger = (
                    f", strongest {strongest['accuracy']:.3f} ({strongest['attacker']})" if strongest else ""
                )
                lines.append(
                    f"  {name} {label}: accuracy {entry['accuracy']:.3f}{stronger} "
                    f"(chance {entry['chance']:.3f})"
                )
    return "\n".join(lines)
