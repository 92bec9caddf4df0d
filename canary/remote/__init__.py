"""Operations on the host over SSH: containers, nginx, the host lock."""
