"""The YAML recipes; installed as the package ``mambajepa.configs`` (see ``setup.py``)."""
