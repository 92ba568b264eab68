"""One module per lint rule; :mod:`dbdeploy.lint.registry` lists them in reporting order."""
