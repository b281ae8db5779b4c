"""Package layout that ``pyproject.toml`` cannot state on its own.

The YAML recipes live in the repository's ``configs/`` folder (the one place they are edited) and
ship inside the wheel as the package ``mambajepa.configs``, which
:func:`mambajepa.config.recipes_dir` reads through ``importlib.resources``. Package discovery
cannot add a package whose folder sits outside ``mambajepa/``, so the list is built here: every
package under ``mambajepa/`` plus the mapped recipes folder.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mambajepa", "mambajepa.*"]), "mambajepa.configs"],
    package_dir={"mambajepa.configs": "configs"},
    package_data={"mambajepa.configs": ["*.yaml"]},
)
