from libs.common.migrations import run_env
from services.claims.models import Base

run_env(Base.metadata)
