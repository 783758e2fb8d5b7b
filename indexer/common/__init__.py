"""Small shared helpers with no engine knowledge: atomic files, content hashes, JSON cleaning, user errors."""
