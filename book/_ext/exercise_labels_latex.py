"""Exercise numbers in the PDF (``make pdf``): a reference to an exercise must not print "Exercise ??".

sphinx-exercise 1.2 labels an exercise in LaTeX as ``exercise:<label>``, but a ``{ref}`` to it from another page
(the syllabus: "Ch. 1, {ref}`ex-01-step`") is written by Sphinx as ``\\ref{<docname>:<label>}``, a label nothing
defines. For LaTeX builds only, this post-transform puts that label beside every numbered exercise, carrying the
number the site shows for it (Exercise 15), so the reference prints the same number in the PDF as on the site.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform


class ExerciseLabels(SphinxPostTransform):
    default_priority = 900
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        from sphinx_exercise.nodes import exercise_enumerable_node

        for node in list(self.document.findall(exercise_enumerable_node)):
            docname, label = node.get("docname"), node.get("label")
            number = self.env.toc_fignumbers.get(docname, {}).get("exercise", {}).get(label)
            if not (docname and label and number):
                continue
            shown = ".".join(map(str, number))
            latex = (
                r"\phantomsection\expandafter\def\csname @currentlabel\endcsname{%s}"
                r"\label{\detokenize{%s:%s}}" % (shown, docname, label)
            )
            node.parent.insert(node.parent.index(node), nodes.raw("", latex, format="latex"))


def setup(app):
    app.add_post_transform(ExerciseLabels)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
