//! mod-querystats for Knot DNS 3.2 (built in its own issue).
