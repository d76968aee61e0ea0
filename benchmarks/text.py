"""The fixed English text that every benchmark analyses.

The prose is plain and varied (numbers, names, punctuation, a few accented
letters), so the tokenizer produces a mix of common and rare tokens, as a
real prompt would. It is repeated when a run needs more tokens than one copy
contains.
"""

from __future__ import annotations

BASE_TEXT = """\
On a cold morning in late October, the harbour master of a small northern town \
opened his ledger and wrote down the names of the ships that had come in overnight. \
There were three trawlers, a ferry from the islands and a grey research vessel that \
nobody had expected. Its captain, a tall woman called Ingrid Solberg, asked for a \
berth for nine days and paid in advance.

The research vessel carried four scientists and a crate of instruments. They were \
measuring how the temperature of the sea changes with depth, and they had followed \
a warm current for almost 1,200 kilometres. Every six hours they lowered a chain of \
sensors to 800 metres, waited forty minutes, and pulled it back up. The readings went \
into a notebook first and into a laptop later, because the laptop had already failed \
twice in rough weather.

In the café beside the fish market, the youngest scientist explained the work to \
anyone who would listen. The current, she said, behaves like a river inside the ocean. \
It keeps its own temperature and saltiness for weeks, and it slowly mixes with the \
water around it. If you know where it goes, you can predict where the fish will \
gather, where the ice will melt early, and why some winters are mild while others \
are hard.

The fishermen were polite but sceptical. Their grandfathers had known the same \
things without any sensors at all. A good skipper reads the colour of the water, \
the birds above it and the way the swell turns near the reef. Still, when the \
scientists showed them a chart with the current drawn in red, one of the older men \
leaned closer and traced the line with his finger. "That bend," he said, "is where \
we lost a net in 1987. We never understood why the water pulled so hard there."

By the end of the week, the two groups were trading information. The fishermen \
described places where the sea felt strange; the scientists checked those places \
against their measurements. Twice the match was exact. Once it was completely wrong, \
and the argument about it lasted until midnight. Nobody changed their mind, but \
everybody agreed to meet again in the spring.

When the research vessel left, the harbour master added a short note to his ledger: \
"Departed 06:40, fair weather, wind from the south-west at twelve knots." Then he \
crossed out "fair" and wrote "uncertain", because the barometer had started to fall \
and he had learned long ago not to trust a calm sky in November.

Months later, a parcel arrived at the harbour office. Inside were a printed report, \
a photograph of the crew on deck and a letter thanking the town for its patience. \
The report was full of graphs, tables and equations that the harbour master did not \
try to follow. On the last page, however, there was a small map of the coast, and \
beside the reef someone had written in pencil: "Ask the fishermen first."
"""


def text_with_tokens(tokenizer, count: int) -> str:
    """Return the benchmark text, repeated until it tokenizes to at least ``count`` tokens."""
    copies = 1
    while len(tokenizer(BASE_TEXT * copies)["input_ids"]) < count:
        copies += 1
    return BASE_TEXT * copies
