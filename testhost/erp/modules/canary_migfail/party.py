from trytond.pool import PoolMeta
from trytond.transaction import Transaction


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'

    @classmethod
    def __register__(cls, module):
        super().__register__(module)
        if module != 'canary_migfail':
            return
        # The addon's data migration: copy the old codes over. The bug: there is no
        # column legacy_code in party_party.
        cursor = Transaction().connection.cursor()
        cursor.execute('UPDATE "party_party" SET "code" = "legacy_code" '
            'WHERE "legacy_code" IS NOT NULL')
