"""The HTTP front door: translates HTTP into actor handle calls, and back."""

from api.app import create_app
from api.common import ApiSettings, Services

__all__ = ["ApiSettings", "Services", "create_app"]
