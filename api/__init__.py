"""The HTTP front door: translates HTTP into actor handle calls, and back."""

from api.app import ApiSettings, Services, create_app

__all__ = ["ApiSettings", "Services", "create_app"]
