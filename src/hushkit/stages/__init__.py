"""Pipeline stages, one module each: download → mix → features → train → evaluate → export."""
