-- 0003: the encrypted credential store (sshjobs secret, ssh_connect save=true).
--
-- Values are AES-256-GCM ciphertexts under a key derived from the master
-- password with Argon2id; host and kind are bound as additional data, so a
-- value copied to another row does not decrypt. Nothing here is readable
-- without the master password.

-- The key derivation: one row. verifier is a ciphertext of a fixed text, so a
-- wrong master password is reported at once.
CREATE TABLE credential_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL,   -- format of this row and of the values
    kdf         TEXT    NOT NULL,   -- 'argon2id'
    salt        BLOB    NOT NULL,
    time_cost   INTEGER NOT NULL,
    memory_kib  INTEGER NOT NULL,
    threads     INTEGER NOT NULL,
    verifier    BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE credentials (
    host          TEXT    NOT NULL,  -- the destination's user@host:port (Host.Key without the route hash)
    alias         TEXT    NOT NULL DEFAULT '',  -- the alias the user named, if any
    kind          TEXT    NOT NULL CHECK (kind IN ('password', 'private_key', 'passphrase', 'sudo', 'enable')),
    value         BLOB    NOT NULL,  -- nonce || ciphertext
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (host, kind)
) STRICT;
