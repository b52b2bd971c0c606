from __future__ import annotations

from libs.common.db import InfraTables, make_base

Base = make_base()
infra = InfraTables(Base.metadata)
