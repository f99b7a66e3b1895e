"""Everything a person reads: console tables, figures, the HTML/Markdown/Word report."""
