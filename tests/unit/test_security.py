"""Password hashing details that the login's timing depends on."""

from __future__ import annotations

from app.security import DUMMY_HASH, hash_password, verify_password


async def test_the_dummy_hash_has_the_same_parameters_as_a_real_hash() -> None:
    real = await hash_password("a password of some length")
    # "$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>": the same algorithm, version and costs make
    # a login for an unknown name take as long as one with a wrong password.
    assert DUMMY_HASH.split("$")[1:4] == real.split("$")[1:4]


async def test_an_unknown_user_never_verifies_even_against_the_dummy_hash() -> None:
    assert await verify_password(None, "") is False
    assert await verify_password(None, "anything at all") is False
    assert await verify_password(await hash_password("right password"), "right password") is True
