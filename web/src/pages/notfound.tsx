import { useTitle } from '../hooks';
import { Link } from '../router';
import { Page } from '../components/ui';

export function NotFoundPage({ reason }: { reason?: string }) {
  useTitle('Not found');
  return (
    <Page title="Nothing here">
      <p>{reason ?? 'This address does not match a page of medfit.'}</p>
      <p>
        <Link href="/">Go to the overview</Link>
      </p>
    </Page>
  );
}
