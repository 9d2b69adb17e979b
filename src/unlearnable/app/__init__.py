"""`unlearnable app`: a local web page over the same protect and check pipeline as the CLI.

server.py   the FastAPI app: the page, uploads, plans, jobs, previews, downloads, access rules
jobs.py     a queue of CLI runs (protect, check), one at a time, each a worker process
worker.py   runs one CLI command and reports its progress bars to a status file
uploads.py  uploaded names checked (no traversal, zip-slip safe) and sizes bounded
static/     the page (HTML, CSS, JS), served from here: nothing comes from the internet
"""
