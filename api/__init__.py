"""The HTTP front door: translates HTTP into actor handle calls, and back."""

from api.app import Services, create_app

__all__ = ["Services", "create_app"]
