"""``python -m bench``: the dfimat serving benchmark (see ``bench/serving.py``)."""

from bench.serving import main

main()
