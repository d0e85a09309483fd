"""Model wrappers: frozen restorers, detectors and classifiers, and the translator.

Submodules are imported explicitly (``from vat.models.restorers import load_restorer``);
nothing is imported here, so importing one model family never pulls in another's
dependencies (ultralytics, open_clip).
"""
