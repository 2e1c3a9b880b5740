class PhotoRejected(ValueError):
    """A photo that cannot be enrolled; `reason` is written for the person who supplied it."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
