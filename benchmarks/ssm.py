"""SSM layers vs Hugging Face mixers: ``python benchmarks/ssm.py [--quick]`` (see mambajepa.bench.ssm)."""

from mambajepa.bench.ssm import main

if __name__ == "__main__":
    main()
