# An addon whose activation fails, for canary-erp:migfail (testhost/erp.sh): that
# image's migration (erp-migrate: trytond-admin ... -u party company canary_migfail)
# runs its data migration, whose SQL names a column that does not exist, and fails with
# psycopg.errors.UndefinedColumn. trytond-admin runs in one transaction, so the database
# is left as it was (nothing of `company` either).
