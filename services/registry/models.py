from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from libs.common.db import TYPE_ANNOTATION_MAP, InfraTables, service_metadata


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


infra = InfraTables(Base.metadata)
