"""Faces: detection, alignment and embeddings, shared by the gates (edge/gate/) and the cloud's enrolment
(cloud/gates/enrolment.py), which must compute the same embedding from the same photo.

It depends on nothing of the edge or the cloud; both import it.
"""
