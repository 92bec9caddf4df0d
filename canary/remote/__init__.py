"""Operations on the host over SSH: containers, nginx, the host lock."""

# Everything the program keeps on the host: the lock, the journal, env files, staged and
# backed-up nginx files (outside nginx's include directories).
STATE_DIR = "/var/lib/canary"
