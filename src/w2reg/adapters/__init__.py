"""Bindings of the W2 regularizer to lightly and solo-learn (installed as ``w2reg.adapters``).

Import the one you use: ``w2reg.adapters.lightly`` or ``w2reg.adapters.solo``. Importing this
package imports neither library.
"""
