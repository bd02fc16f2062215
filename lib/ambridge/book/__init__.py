"""The book's machinery: chapter parameters and presets, the runner, the executor, sweeps and run records.

The science (the core and the result subpackages) never imports this package; chapters and command lines do.
"""
