"""Planning without a config file: ``solve`` (n, power or effect from a few numbers) and ``init`` (a starting config).

Thin: parse, call :mod:`trialsim.planning.solve` / :mod:`trialsim.planning.init`, print. Bad numbers
raise ``ConfigError`` (exit status 2 in ``trialsim.cli.main``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from trialsim.analysis import registry as tests
from trialsim.config.loader import ConfigError
from trialsim.planning.init import TEMPLATES, write_template
from trialsim.planning.solve import (
    MEAN_TESTS,
    RATE_MIN,
    SolveInputError,
    solve_ratio_of_means,
    solve_two_means,
    solve_two_proportions,
)

SOLVE_EPILOG = """Give all but one of the effect, --n and --power; the one left out is solved for. Examples:
  trialsim solve proportions --p-control 0.124 --risk-ratio 0.5 --power 0.8 0.9
  trialsim solve proportions --p-control 0.124 --p-treatment 0.062 --n 10 --test fisher boschloo chi2
  trialsim solve proportions --p-control 0.124 --n 100 --power 0.8          (smallest effect)
  trialsim solve means --difference 0.5 --sd 1 --power 0.8                  (pwr.t.test(d = 0.5, power = 0.8))
  trialsim solve gmr --gmr 0.7 --log-sd 0.69 --n 10 --test welch
Sizes are analysable patients per arm (the control arm; the treatment arm has --ratio times as many);
--dropout inflates them to the numbers to enrol."""


def _binary_tests() -> list[str]:
    return [t for t in tests.names("binary") if tests.get(t).exact_power is not None]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=None, metavar="N", help="analysable patients in the control arm (leave out to solve for it)")
    p.add_argument("--power", type=float, nargs="+", default=None, metavar="P",
                   help="target power(s), e.g. 0.8 0.9 (leave out to solve for the power)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    p.add_argument("--ratio", type=float, default=1.0, help="allocation ratio n_treatment / n_control (default 1)")
    p.add_argument("--dropout", type=float, default=0.0, help="expected fraction not analysable, to inflate n to enrol (default 0)")


def add_parsers(sub) -> None:
    """Add ``solve`` (with ``proportions``, ``means``, ``gmr``) and ``init``."""
    p = sub.add_parser("solve", help="sample size, power or smallest effect from a few numbers (no config file)",
                       description="Exact power for two proportions (every 2x2 table) and two means (noncentral t; Welch "
                                   "by quadrature), with the normal approximation beside it.",
                       epilog=SOLVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{proportions,means,gmr}")

    q = kinds.add_parser("proportions", help="two event rates (Fisher, Boschloo, chi-square: exact)", epilog=SOLVE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--p-control", type=float, required=True, help="event rate in the control arm, e.g. 0.124")
    effect = q.add_mutually_exclusive_group()
    effect.add_argument("--p-treatment", type=float, default=None, help="event rate in the treatment arm")
    effect.add_argument("--risk-ratio", type=float, default=None, help="treatment rate / control rate (instead of --p-treatment)")
    q.add_argument("--test", nargs="+", default=["fisher"], choices=_binary_tests(), help="exact test(s) (default fisher)")
    q.add_argument("--direction", choices=["lower", "higher"], default="lower",
                   help="solving for the effect: a treatment rate below (default) or above the control rate")
    _common(q)

    m = kinds.add_parser("means", help="two means of a normal outcome (t test: noncentral t; Welch)", epilog=SOLVE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("--difference", type=float, default=None, help="true difference of means (with --sd 1: Cohen's d)")
    m.add_argument("--sd", type=float, default=1.0, help="SD (of the control arm with --sd-treatment; default 1)")
    m.add_argument("--sd-treatment", type=float, default=None, help="SD of the treatment arm (Welch only; default --sd)")
    m.add_argument("--test", nargs="+", default=None, choices=list(MEAN_TESTS),
                   help="t (pooled) and/or welch (default: t, or welch when --sd-treatment differs from --sd)")
    _common(m)

    g = kinds.add_parser("gmr", help="a ratio of geometric means (log-normal outcome, t test on the logs)", epilog=SOLVE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--gmr", type=float, default=None, help="true ratio of geometric means, treatment / control")
    spread = g.add_mutually_exclusive_group(required=True)
    spread.add_argument("--log-sd", type=float, default=None, help="SD of the natural logs")
    spread.add_argument("--cv", type=float, default=None, help="coefficient of variation on the original scale (instead of --log-sd)")
    g.add_argument("--test", nargs="+", default=["t"], choices=list(MEAN_TESTS), help="t (pooled, default) and/or welch")
    g.add_argument("--direction", choices=["lower", "higher"], default="lower",
                   help="solving for the effect: a ratio below 1 (default) or above it")
    _common(g)

    i = sub.add_parser("init", help="write a commented starting config (a new trial, or the registered one)")
    i.add_argument("out", type=Path, metavar="OUT.toml", help="the config file to write")
    i.add_argument("--template", choices=TEMPLATES, default="blank",
                   help="blank: a new randomised trial to fill in (default); registered: the registered exosome/LAR trial")
    i.add_argument("--force", action="store_true", help="overwrite OUT.toml if it exists")


EFFECT_FLAGS = {"proportions": ("p_treatment", "--p-treatment or --risk-ratio"), "means": ("difference", "--difference"),
                "gmr": ("gmr", "--gmr")}


def flag_namer(args):
    """How the command line names a solver's parameter (``--n``) or setting (``--n 1``), for its messages.

    A treatment rate given as ``--risk-ratio`` is named by it and the rate it makes.
    """
    def name(param: str, *value) -> str:
        if param == "p_treatment" and getattr(args, "risk_ratio", None) is not None:
            rate = f" (a treatment rate of {_value(value[0])})" if value else ""
            return f"--risk-ratio {_value(args.risk_ratio)}{rate}"
        flag = "--n" if param == "n_per_arm" else "--" + param.replace("_", "-")
        return f"{flag} {_value(value[0])}" if value else flag

    return name


def _value(v) -> str:
    return f"{v:.15g}" if isinstance(v, float) else str(v)


def _treatment_rate(args) -> float | None:
    """``--p-treatment``, or ``--p-control`` times ``--risk-ratio`` (refused unless it is a rate)."""
    if args.risk_ratio is None:
        return args.p_treatment
    rate = args.p_control * args.risk_ratio
    if not RATE_MIN <= rate <= 1.0 - RATE_MIN:
        raise ConfigError(f"--risk-ratio {_value(args.risk_ratio)} is not allowed with --p-control {_value(args.p_control)}: "
                          f"it makes a treatment rate of {rate:.7g}; use a --risk-ratio from {RATE_MIN / args.p_control:.7g} "
                          f"to {(1.0 - RATE_MIN) / args.p_control:.7g} (a treatment rate in [{RATE_MIN:g}, {1 - RATE_MIN:g}])")
    return rate


def cmd_solve(args) -> int:
    field, flags = EFFECT_FLAGS[args.kind]
    effect = getattr(args, field) if args.kind != "proportions" or args.risk_ratio is None else args.risk_ratio
    left_out = [name for name, value in ((flags, effect), ("--n", args.n), ("--power", args.power)) if value is None]
    if len(left_out) != 1:
        raise ConfigError(f"give all but one of {flags}, --n and --power: the one left out is solved for "
                          f"({'all three were given' if not left_out else 'left out: ' + ', '.join(left_out)})")
    powers = args.power if args.power is not None else [None]
    name = flag_namer(args)
    blocks, refused = [], {}
    for test in args.test or [None]:  # None: the solver's choice (means: t, or Welch's test for unequal SDs)
        for power in powers:
            common = dict(n_per_arm=args.n, power=power, test=test, alpha=args.alpha, ratio=args.ratio, dropout=args.dropout)
            try:
                if args.kind == "proportions":
                    sol = solve_two_proportions(args.p_control, _treatment_rate(args), direction=args.direction, **common)
                elif args.kind == "means":
                    sol = solve_two_means(args.difference, sd=args.sd, sd_treatment=args.sd_treatment, **common)
                else:
                    sol = solve_ratio_of_means(args.gmr, log_sd=args.log_sd, cv=args.cv, direction=args.direction, **common)
            except SolveInputError as exc:  # a question one test refuses, others may answer: each gives what it can
                refused.setdefault(exc.spelled(name), None)
                continue
            blocks.append(sol.summary())
    if not blocks:
        raise ConfigError(next(iter(refused)))
    print("\n\n".join(blocks + [f"Not answered: {why}" for why in refused]))
    return 0


def cmd_init(args) -> int:
    try:
        path = write_template(args.out, args.template, force=args.force)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    edit = "edit the values marked FILL IN" if args.template == "blank" else "change what differs in your trial"
    print(f"written: {path} ({args.template} template; it loads as it is)\n"
          f"next: {edit}, then `trialsim show {path}` and `trialsim run {path}`")
    return 0


COMMANDS = {"solve": cmd_solve, "init": cmd_init}
