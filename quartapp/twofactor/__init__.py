"""Second factors: TOTP with recovery codes.

- ``totp``: the key, its QR code, and accepting each code once;
- ``recovery``: the ten recovery codes, stored hashed, each usable once;
- ``misses``: wrong codes in a row, per user on every path, and the owner's list of them;
- ``views``: /account/two-factor, where a user turns TOTP on and off and makes new
  recovery codes;
- ``login``: /login/two-factor, the second step of a password login, and the code
  that /login/confirm asks for (:mod:`quartapp.auth.reauth`);
- ``forms``: their forms.
"""
