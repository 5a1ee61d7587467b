"""OSCAL exports: assessment results and a POA&M built from control evaluations."""
