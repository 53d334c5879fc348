"""The reference apps the bench measures quartapp against; nothing in quartapp uses them."""
