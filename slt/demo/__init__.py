"""The offline demo model set: the DailyMoth -> How2Sign story, re-enacted on the synthetic signing corpus.

A tiny SignHiera (frozen, random), a tiny SONAR-style text decoder (pretrained as a text autoencoder, then frozen),
a "zero-shot" encoder trained on domain A (studio) and a "fine-tuned" encoder adapted to domain B
(instructional) with the decoder frozen: the same classes and training code as the full-size models.
"""
