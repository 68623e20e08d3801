"""`echogen-train STAGE --config FILE.yaml [key=value ...]` (also `python -m echogen_training`), and the tools
for trained models: `echogen-train TOOL ...` (echogen_training.tools.TOOLS lists them; `echogen-train --help`
prints the list)."""

from __future__ import annotations

import argparse
import os
import sys

from echogen_training import tools
from echogen_training.config import STAGES, ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in tools.TOOLS:
        return tools.main(argv[0], argv[1:])
    parser = argparse.ArgumentParser(
        prog="echogen-train",
        description="Train EchoGen: vq → pmtp → djo → cycle_rl",
        epilog=f"tools for trained models (echogen-train TOOL --help):\n  {', '.join(tools.TOOLS)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--config", help="YAML config (see training/echogen_training/configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-4 data.batch_size=8")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_intermixed_args(argv)
    try:
        config = load_config(args.config, args.overrides, stage=args.stage)
    except ConfigError as exc:
        print(f"echogen-train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        from echogen_training.config import to_dict

        print(yaml.safe_dump(to_dict(config), sort_keys=False))
        return 0
    from echogen_training.loop import Trainer

    try:
        trainer = Trainer(config)
        code = trainer.run()
    except (FileNotFoundError, ValueError) as exc:
        print(f"echogen-train: error: {exc}", file=sys.stderr)
        code = 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # The process group is already destroyed and every file closed. Exit without freeing anything:
        # - `trainer` is still referenced here, on purpose. Freeing it frees DDP's reducer, which holds the
        #   last reference to the gloo group; its destructor joins gloo's threads with the GIL held, while one
        #   of them may need the GIL to release a tensor: a deadlock (seen here once, a rank hung at exit).
        # - interpreter finalisation can abort for the same reason (a SIGABRT after an FSDP run; pytorch#179291).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
