"""Links: the files on offer, the signed tokens, handing a link out, and admitting a download."""
