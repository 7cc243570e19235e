"""``remit keys``: create the Ed25519 key pair that signs policy bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from remit.cli.common import console, fail
from remit.errors import SigningKeyError
from remit.policy.signing import generate_key, save_key

keys_app = typer.Typer(help="Bundle signing keys.", no_args_is_help=True)


@keys_app.command("generate")
def generate(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Private key file (.pem or .jwk).")
    ] = Path("remit-signing.pem"),
    public: Annotated[
        Path | None, typer.Option(help="Public key file; default: <output>.pub with same suffix.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Generate an Ed25519 key pair: the private key signs bundles, sidecars get the public one."""
    public = public or output.with_name(f"{output.stem}.pub{output.suffix}")
    for path in (output, public):
        if path.exists() and not force:
            fail(f"{path} exists (use --force to overwrite)")
    key = generate_key()
    try:
        save_key(key, output, private=True)
        save_key(key, public, private=False)
    except SigningKeyError as exc:
        fail(str(exc))
    console.print(f"private key: {output} (mode 0600)\npublic key:  {public}\nkid: {key.kid}")
