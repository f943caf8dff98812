"""The ModelJob API (v1alpha1): pydantic models at the edge and the CRD generated from them."""
