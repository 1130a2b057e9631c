"""`draftloop eval`: the quality instrument. Runs the frozen request set through the real graph,
judges what shipped with a separate judge model, and writes results, a report and a chart."""
