"""codeintel"""
