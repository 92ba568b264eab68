"""dbdeploy's own schemas by default: spelled here once, imported wherever a default is needed.

``HISTORY_SCHEMA`` holds ``migration_log`` (the history) and the deployment lock's key;
``BACKUP_SCHEMA`` holds what a destructive step saves for its rollback (``dbdeploy_backup`` and
``dbdeploy_backup_*`` are reserved: no spec may touch them). Both are configurable per project in
``dbdeploy.toml``; a bundle's manifest records the ones it was generated for.
"""

from __future__ import annotations

HISTORY_SCHEMA = "migrations"
BACKUP_SCHEMA = "dbdeploy_backup"
