# A customer's addon with a bug, for canary-erp:rpcfail (testhost/erp.sh): creating a
# party raises KeyError, so Tryton answers `model.party.party.create` with HTTP 200 and
# an `error` member and logs `ERROR trytond...` with the traceback. Reading parties
# (search_read) and the health path keep working.
#
# Its class is registered under the `party` module rather than its own: it is in force
# wherever `party` is activated, without activating this addon. Activating it would
# change the database that the stable version shares (a version whose image lacks an
# activated module cannot load the database any more), and a bug in code alone should
# be rolled back by removing the canary, with no schema change to undo.
from trytond.pool import Pool

from . import party


def register():
    Pool.register(party.Party, module='party', type_='model')
