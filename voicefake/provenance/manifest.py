"""Say in the file itself that it is synthetic: metadata tags plus a signed C2PA manifest.

    tags = make_tags("speech", voice="joe")
    tag_soundfile(open_soundfile, tags)       # wav/flac/ogg, before the first sample is written
    tag_file(tmp, ".mp3", tags)               # mp3 (ID3v2) and mp4 (iTunes atoms), after closing
    sign(tmp, ".wav", voice="joe")            # embeds a C2PA manifest (wav, flac, mp3, mp4)
    inspect("out.wav")  # {"tags": {...}, "c2pa": {...} or None}

Tags: software "voicefake <version>", a comment saying the file is AI-generated, the creation time
(UTC, ISO 8601), the voice when known. The C2PA manifest holds a c2pa.actions assertion
(c2pa.created, digitalSourceType trainedAlgorithmicMedia) and a `voicefake.synthetic` assertion
(tool, voice, created), signed with ES256 by a key this toolkit makes on first use: a local root CA
and a signing certificate issued by it, kept in `$VOICEFAKE_HOME/keys/` (c2pa-rs refuses self-signed
signing certificates). Files signed on this machine verify as "Trusted" here (the local root is a
trust anchor); elsewhere they verify as "Valid" (intact, signer not on the reader's trust list).
Signing needs no network: no time-stamp authority, no OCSP.
"""

from __future__ import annotations

import datetime as _dt
import os
import stat
from pathlib import Path

from voicefake.config import VERSION, voicefake_home
from voicefake.errors import VoicefakeError
from voicefake.io import atomic
from voicefake.io.atomic import atomic_output

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ASSERTION_LABEL = "voicefake.synthetic"  # our own assertion: tool, voice, created
SIGNABLE = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".mp4": "video/mp4"}
READABLE = {**SIGNABLE, ".m4a": "audio/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}  # others' files too
SIGNER_FILE = "c2pa-signer.pem"  # private key + certificate chain, mode 0600
ROOT_FILE = "c2pa-root-ca.pem"  # the local root certificate: add it to a C2PA trust list to trust this machine
# extended key usages c2pa-rs accepts for a claim signer (it accepts none unless told)
_EKUS = ("1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36", "1.3.6.1.5.5.7.3.8", "1.3.6.1.5.5.7.3.9",
         "1.3.6.1.4.1.311.76.59.1.9", "1.3.6.1.4.1.62558.2.1")
_CERT_YEARS = 20


def software() -> str:
    """What every voicefake output names as its software: "voicefake <version>"."""
    return f"voicefake {VERSION}"


def now_utc() -> str:
    """The current time as UTC ISO 8601 to the second, e.g. 2026-05-01T12:34:56Z."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- tags


def make_tags(kind: str = "speech", voice: str | None = None, created: str | None = None) -> dict[str, str]:
    """The tags of one output: software, comment, date and (voice known) artist. `kind`: speech or video."""
    what = "speech" if kind == "speech" else "lip-sync video"
    comment = f"AI-generated (synthetic {what}) made by {software()}"
    tags = {"software": software(), "comment": comment + (f", voice {voice}" if voice else ""),
            "date": created or now_utc()}
    if voice:
        tags["artist"] = f"voicefake voice {voice}"
    return tags


def tag_soundfile(handle, tags: dict[str, str]) -> None:
    """Set tags on a soundfile.SoundFile opened for writing (WAV: RIFF INFO; FLAC/OGG: Vorbis comments).

    Must run before the first sample is written. libsndfile's MP3 writer keeps only an ID3v1 tag
    (year, no software): mp3 is tagged with `tag_file` instead."""
    for key in ("software", "comment", "date", "artist"):
        if key in tags:
            setattr(handle, key, tags[key])


def tag_file(path: str | os.PathLike, ext: str, tags: dict[str, str]) -> None:
    """Write tags into a closed mp3 (ID3v2.4) or mp4 (iTunes atoms) with mutagen, in place."""
    ext = ext.lower()
    try:
        if ext == ".mp3":
            from mutagen.id3 import COMM, ID3, TDRC, TPE1, TSSE, ID3NoHeaderError

            try:
                id3 = ID3(str(path))
            except ID3NoHeaderError:
                id3 = ID3()
            id3.add(TSSE(encoding=3, text=tags["software"]))
            id3.add(COMM(encoding=3, lang="eng", desc="", text=tags["comment"]))
            id3.add(TDRC(encoding=3, text=tags["date"].rstrip("Z")))  # ID3 times carry no zone
            if "artist" in tags:
                id3.add(TPE1(encoding=3, text=tags["artist"]))
            id3.save(str(path), v2_version=4)
        elif ext in (".mp4", ".m4a", ".m4v", ".mov"):
            from mutagen.mp4 import MP4

            mp4 = MP4(str(path))
            if mp4.tags is None:
                mp4.add_tags()
            mp4.tags["\xa9too"] = [tags["software"]]
            mp4.tags["\xa9cmt"] = [tags["comment"]]
            mp4.tags["\xa9day"] = [tags["date"]]
            if "artist" in tags:
                mp4.tags["\xa9ART"] = [tags["artist"]]
            mp4.save()
        else:
            raise VoicefakeError(f"cannot tag {ext} files this way: use tag_soundfile")
    except VoicefakeError:
        raise
    except Exception as error:
        raise VoicefakeError(f"cannot write the metadata tags of {path}: {_short(error)}") from error


def read_tags(path: str | os.PathLike) -> dict[str, str]:
    """The descriptive tags of any media file as FFmpeg reads them (software, comment, date, artist,
    title), whoever wrote them; {} when there are none. Unreadable files raise VoicefakeError."""
    import av

    try:
        with av.open(str(path)) as container:
            layers = [dict(container.metadata)] + [dict(s.metadata) for s in container.streams]
    except Exception as error:
        raise VoicefakeError(f"cannot read the tags of {path}: not a media file FFmpeg can open, or damaged or "
                             f"truncated ({_short(error)}); get a complete copy of the file") from error
    found: dict[str, str] = {}
    # the container first (an mp3's stream-level "encoder" is only LAME's); a "software" tag beats an
    # "encoder" one (an ogg names libsndfile as encoder); FFmpeg reads WAV's ISFT, ID3's TSSE and mp4's
    # \xa9too as "encoder"
    for wanted, aliases in (("software", ("software", "encoder")), ("comment", ("comment",)),
                            ("date", ("date",)), ("artist", ("artist",)), ("title", ("title",))):
        for alias in aliases:
            values = [str(v) for layer in layers for k, v in layer.items() if k.lower() == alias and v]
            if values:
                found[wanted] = values[0]
                break
    return found


# ---------------------------------------------------------------- signing key


def keys_dir() -> Path:
    """Where the signing key lives: $VOICEFAKE_HOME/keys."""
    return voicefake_home() / "keys"


def root_certificate() -> Path:
    """The local root CA certificate (PEM), made with the key on first use."""
    signing_key()
    return keys_dir() / ROOT_FILE


def signing_key() -> tuple[bytes, bytes]:
    """(private key PEM, certificate chain PEM: signer then root), made on first use and kept.

    Concurrent first uses are safe: the file is made complete under a temporary name and linked
    into place only if no other process got there first (then that one's key is used)."""
    folder = keys_dir()
    path = folder / SIGNER_FILE
    if not path.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            with atomic_output(path, mode=0o600, exclusive=True) as tmp:  # private: never the umask's mode
                tmp.write_bytes(_make_signer())
        except FileExistsError:
            pass  # another process made it first: use theirs
        except (OSError, VoicefakeError) as error:  # atomic_output's own errors carry the OSError as cause
            cause = error.__cause__ if isinstance(error, VoicefakeError) and error.__cause__ else error
            raise VoicefakeError(f"cannot create the signing key in {folder}: {getattr(cause, 'strerror', None) or cause} "
                                 "(make $VOICEFAKE_HOME writable)") from error
    try:
        text = path.read_bytes()
    except OSError as error:
        raise VoicefakeError(f"cannot read the signing key {path}: {error.strerror or error}") from error
    key, certs = _pem_blocks(text, b"PRIVATE KEY"), _pem_blocks(text, b"CERTIFICATE")
    if len(key) != 1 or len(certs) != 2:
        raise VoicefakeError(f"the signing key {path} is damaged: delete it and a new one is made on the next "
                             "output (files signed with the old key stay verifiable)")
    root = folder / ROOT_FILE
    if not root.exists():
        _write_atomic(root, certs[1])
    return key[0], certs[0] + certs[1]


def _make_signer() -> bytes:
    """A fresh P-256 root CA and an ES256 signing certificate issued by it; the root's key is dropped."""
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    tag = secrets.token_hex(4)  # tells two installs' signers apart
    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=1)  # tolerate slightly wrong clocks
    until = now + _dt.timedelta(days=365 * _CERT_YEARS)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voicefake"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=not sign,
                             crl_sign=not sign, encipher_only=False, decipher_only=False)

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = name(f"voicefake local root {tag}")
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage(sign=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name(f"voicefake signer {tag}")).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # documentSigning
                                                  ObjectIdentifier("1.3.6.1.4.1.62558.2.1")]),  # C2PA claim signing
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            + cert.public_bytes(pem) + root.public_bytes(pem))


def _pem_blocks(text: bytes, kind: bytes) -> list[bytes]:
    blocks, begin, end = [], b"-----BEGIN " + kind + b"-----", b"-----END " + kind + b"-----"
    start = text.find(begin)
    while start >= 0:
        stop = text.find(end, start)
        if stop < 0:
            break
        blocks.append(text[start : stop + len(end)] + b"\n")
        start = text.find(begin, stop)
    return blocks


def _write_atomic(path: Path, data: bytes) -> None:
    atomic.write_bytes(path, data, mode=0o644)  # the root certificate is public


# ---------------------------------------------------------------- C2PA manifest


def _context(anchor: bytes | None = None):
    """c2pa settings: the EKUs c2pa-rs may accept, our root as a trust anchor, nothing fetched online."""
    import c2pa

    trust = {"trust_config": "\n".join(_EKUS) + "\n"}
    if anchor:
        trust["user_anchors"] = anchor.decode("ascii")
    return c2pa.Context.from_dict({"trust": trust, "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}})


def manifest_definition(title: str, kind: str = "speech", voice: str | None = None, created: str | None = None,
                        source_type: str = TRAINED_ALGORITHMIC_MEDIA) -> dict:
    """The manifest voicefake signs: a c2pa.created action and the voicefake.synthetic assertion."""
    agent = {"name": "voicefake", "version": VERSION}
    mine = {"tool": software(), "kind": kind, "created": created or now_utc()}
    if voice:
        mine["voice"] = voice
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type,
                                   "softwareAgent": agent}]}},
            {"label": ASSERTION_LABEL, "data": mine},
        ],
    }


def sign(path: str | os.PathLike, ext: str | None = None, *, title: str | None = None, kind: str = "speech",
         voice: str | None = None, created: str | None = None, source_type: str = TRAINED_ALGORITHMIC_MEDIA) -> None:
    """Embed a signed C2PA manifest into the wav/flac/mp3/mp4 at `path`, in place.

    `ext` names the format when the file name does not (writers sign their hidden temporary file
    before renaming it into place). The signed copy is built beside `path` and replaces it only
    when complete: on any error `path` is left as it was and VoicefakeError is raised."""
    import c2pa

    path = Path(path)
    ext = (ext or path.suffix).lower()
    if ext not in SIGNABLE:
        raise VoicefakeError(f"cannot sign {path}: C2PA manifests go into {', '.join(SIGNABLE)} files, not {ext!r}")
    key, chain = signing_key()
    definition = manifest_definition(title or path.name, kind, voice, created, source_type)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # signing in place keeps the file's mode
        with atomic_output(path, suffix=".signed", mode=mode) as tmp:
            signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
            with signer, _context(_pem_blocks(chain, b"CERTIFICATE")[-1]) as context, \
                    c2pa.Builder(definition, context=context) as builder, \
                    open(path, "rb") as source, open(tmp, "w+b") as dest:
                builder.sign(signer, SIGNABLE[ext], source, dest)
    except Exception as error:
        raise VoicefakeError(f"cannot sign {title or path.name} with a C2PA manifest: {_short(error)}") from error


def read_manifest(path: str | os.PathLike) -> dict | None:
    """The active C2PA manifest of `path`, summarised; None when it has none (or its format cannot hold one).

    {"signed_by", "issuer", "claim_generator", "actions", "voicefake", "validation", "problems"}:
    validation is "Trusted" (intact, signed by this machine's key), "Valid" (intact, signer unknown
    here) or "Invalid" (changed after signing, or a bad signature: see problems)."""
    import c2pa

    path = Path(path)
    mime = READABLE.get(path.suffix.lower())
    if mime is None:
        return None
    root = keys_dir() / ROOT_FILE
    anchor = root.read_bytes() if root.is_file() else None
    try:
        with _context(anchor) as context, open(path, "rb") as stream:
            reader = c2pa.Reader.try_create(mime, stream, None, context)
            if reader is None:
                return None
            with reader:
                manifest = reader.get_active_manifest() or {}
                state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
    except c2pa.C2paError.ManifestNotFound:
        return None
    except Exception as error:
        raise VoicefakeError(f"cannot read the C2PA manifest of {path}: the file is damaged or truncated "
                             f"({_short(error)}); get a complete copy of the file") from error
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    actions, mine = [], None
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                agent = action.get("softwareAgent")
                if isinstance(agent, dict):
                    agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
                actions.append({k: v for k, v in (("action", action.get("action")),
                                                  ("digitalSourceType", action.get("digitalSourceType")),
                                                  ("softwareAgent", agent)) if v})
        elif label == ASSERTION_LABEL:
            mine = data
    signature = manifest.get("signature_info") or {}
    failures = (results.get("activeManifest") or {}).get("failure") or []
    return {
        "signed_by": signature.get("common_name"),
        "issuer": signature.get("issuer"),
        "claim_generator": " ".join(str(generator[k]) for k in ("name", "version") if generator.get(k)) or None,
        "actions": actions,
        "voicefake": mine,
        "validation": state,
        "problems": [f"{f.get('code')}: {f.get('explanation')}" for f in failures
                     if f.get("code") != "signingCredential.untrusted"],
    }


def inspect(path: str | os.PathLike) -> dict:
    """{"tags": read_tags(path), "c2pa": read_manifest(path)}: what the file says about its origin.

    Files that cannot be parsed, or whose wav/mp4 structure is cut short, raise VoicefakeError."""
    path = Path(path)
    if not path.is_file():
        raise VoicefakeError(f"no such file: {path}")
    check_complete(path)
    return {"tags": read_tags(path), "c2pa": read_manifest(path)}


def check_complete(path: str | os.PathLike) -> None:
    """Raise VoicefakeError when a wav's RIFF chunk or an mp4's top-level boxes run past the end of the
    file (a cut download or copy); other formats are not checked here."""
    path = Path(path)
    ext = path.suffix.lower()
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as stream:
        head = stream.read(12)
        if ext == ".wav" and head[:4] in (b"RIFF", b"RIFX"):
            declared = int.from_bytes(head[4:8], "little" if head[:4] == b"RIFF" else "big") + 8
            if declared > size + 1 and declared != 0xFFFFFFFF + 8:  # a pad byte short is tolerated; -1: streamed
                problem = f"it declares {declared} bytes but has {size}"
        elif ext in (".mp4", ".m4a", ".m4v", ".mov"):
            offset = 0
            while offset + 8 <= size:
                stream.seek(offset)
                header = stream.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8].decode("latin-1")
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")
                elif length == 0:  # the last box runs to the end of the file
                    break
                if length < 8:
                    problem = f"its {kind!r} box at byte {offset} has an impossible size"
                    break
                if offset + length > size:
                    problem = f"its {kind!r} box needs {offset + length} bytes but the file has {size}"
                    break
                offset += length
    if problem:
        raise VoicefakeError(f"{path} is truncated or damaged: {problem}; get a complete copy of the file")


def describe(info: dict) -> list[str]:
    """Human lines for what `inspect` found (for `voicefake detect`)."""
    lines = []
    tags = info.get("tags") or {}
    shown = [f"{key} {tags[key]!r}" for key in ("comment", "software", "date", "artist", "title") if key in tags]
    lines.append("tags: " + ("; ".join(shown) or "none"))
    manifest = info.get("c2pa")
    if manifest is None:
        lines.append("C2PA manifest: none")
        return lines
    verdict = {"Trusted": "intact, signed by this machine's voicefake key",
               "Valid": "intact, signer not on this machine's trust list",
               "Invalid": "INVALID: the file changed after it was signed (edited, re-encoded or cut)"}.get(manifest["validation"],
                                                                                 str(manifest["validation"]))
    actions = ", ".join(a.get("action", "?") + (f" ({a['digitalSourceType'].rsplit('/', 1)[-1]})"
                                                 if a.get("digitalSourceType") else "")
                        for a in manifest["actions"]) or "no actions"
    lines.append(f"C2PA manifest: {verdict}; signed by {manifest['signed_by']}, made with "
                 f"{manifest['claim_generator']}, {actions}")
    lines += [f"  problem: {p}" for p in manifest["problems"]]
    return lines


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())[:200]
