from datahelpers import class_tree  # noqa: F401  (the fixture)
