"""Audio tagging: what is in a recording (speech, which noise categories), as multi-label clip scores.

* ``labels``: the label set (the corpus's noise categories plus ``speech``) and multi-hot targets;
* ``clips``: curated (one noise category alone) and noisy (speech plus one to three noise categories) clips, built
  from the mix stage's speaker- and noise-instance-disjoint splits;
* ``data``: a split of rendered clips as the Trainer's training and validation source, and clip scores of a model;
* ``frontend``: the log-mel front end every tagger runs inside itself (waveform in, features out);
* ``metrics``: lwlrap (overall, per class with bootstrap intervals, its chance level), mAP, a confusion view;
* ``export``: a tagger as one ONNX graph (waveform in, clip probabilities out) and its registered version;
* ``summary`` and ``plots``: the taggers side by side (the tag-summary stage, the report's Tagging section);
* ``inference``: tagging recordings with a trained tagger, per file or per segment (`hushkit tag`).

The taggers themselves (``tagcnn``, ``gcnn``) live in the model registry beside the denoisers (hushkit.models).
This package's ``__init__`` imports nothing, so that hushkit.models may import the front end.
"""
